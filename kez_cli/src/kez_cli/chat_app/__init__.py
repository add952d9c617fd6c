"""`kez chat`: the Textual client of the messaging service (issue 14, DESIGN §6).

The app holds no messaging logic: every action calls `kez_core.chat.MessagingService`.
- `session`: one identity's service, routes and unlock step (what the app is given);
- the live receive side is `kez_core.chat.listener.Listener` (typed events, reconnect with backoff);
- `render`: outside text to Textual `Text` objects (markup off, safetext escaped);
- `app`: the screens and bindings.

Importing this package imports nothing heavy; `app` imports textual.
"""
