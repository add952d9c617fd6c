"""HPKE (RFC 9180) vectors in tests/vectors/hpke/: not testable against KEZ code yet.

KEZ has no HPKE of its own; it arrives with the messaging issue, built on
`cryptography.hazmat.primitives.hpke.Suite`. What blocks a test today,
checked with cryptography 50.0.2 on all 5 vectors (RFC 9180 A.1.1 and A.2.1,
cfrg 779d028 with aead_id 1, 2 and 3):

- Decryption: `Suite.decrypt(enc || ct, skR, info=info)` has no `aad`
  parameter; it opens single-shot messages sealed with empty AAD. Every
  vector encryption (sequence 0 included) uses non-empty AAD ("Count-0",
  "Count-1", ...), so it fails with `InvalidTag` on all of them. The
  private `cryptography.hazmat.bindings._rust.openssl.hpke._decrypt_with_aad`
  does open sequence 0 of all five, but that is an underscore API of the
  library, not our code.
- Sequence numbers > 0 and exports: `Suite` is single-shot (one message per
  context, sequence 0) and has no `export`, so the other encryptions and the
  `exports` cannot be reached at all.
- Encryption: `Suite.encrypt` draws its own ephemeral key; there is no hook to
  inject `skEm`/`ikmE`, so `enc` and `ct` cannot be reproduced.

Once KEZ has its HPKE module, test its sequence-0 decryption (and anything
else it exposes) against these files and remove this skip.
"""

from __future__ import annotations

import pytest

pytest.skip(
    "HPKE lands with the messaging issue (cryptography's hpke.Suite cannot take the vectors' "
    "non-empty AAD, later sequence numbers or a fixed ephemeral key; see module docstring)",
    allow_module_level=True,
)
