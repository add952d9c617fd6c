"""KEZ channel: proofs in a GitHub user's public gists."""

from .channel import GitHubChannel

__all__ = ["GitHubChannel"]
