"""The Hugging Face Hub's side of the platform: its API shapes, and each space as a git repository."""
