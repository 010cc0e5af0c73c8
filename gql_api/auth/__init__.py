"""Authentication: password hashing, tokens, and who is calling."""
