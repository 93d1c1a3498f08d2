"""Servers that expose the sandbox and the loop to other programs."""
