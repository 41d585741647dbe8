"""The jobs a user submits: `embedbeam train` and `embedbeam embed`."""
