"""KEZ channel: proofs in a fediverse (ActivityPub/Mastodon) profile.

`ActivityPubChannel` reads the compact proof from an actor's profile fields
or summary (WebFinger → actor JSON) and publishes it with the Mastodon API.
`kez_channel_activitypub.testing.running_server` is a local Mastodon-shaped
server for tests.
"""

from .channel import ActivityPubChannel

__all__ = ["ActivityPubChannel"]
