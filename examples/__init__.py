"""The demo's real data, made from packages (MNIST, espeak-ng, WordNet, Debian): not shipped."""
