"""A table on disk: its layout (names, paths, schemas), files, shards and centroids."""
