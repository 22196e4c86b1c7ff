"""Checkpoints: resolve a spec (hub id, folder, bundled, fake) to a ModelRef with a content hash; GGUF conversion; the bundled model."""
