"""What the stages share: the records between them, their coders, dead letters, progress."""
