"""KEZ channel: proofs as `lat.kez.claim` records in a Bluesky (atproto) repo.

`BlueskyChannel` (in `channel`) is what the `bluesky` entry point registers;
it is cheap to import. Reading goes through `httpx` and publishing through
the `atproto` SDK, both imported only when a proof is fetched or published.
`kez_channel_bluesky.testing` holds a local fake PDS + PLC directory for tests.
"""
