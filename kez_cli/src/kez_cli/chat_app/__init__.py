"""`kez chat`: the Textual client of the messaging service (issue 14, DESIGN §6).

The app holds no messaging logic: every action calls `kez_core.chat.MessagingService`.
- `session`: one identity's service, routes and unlock step (what the app is given);
- `feed`: the live receive side, every transport x every inbox key, as app events;
- `render`: outside text to Textual `Text` objects (markup off, safetext escaped);
- `app`: the screens and bindings.

Importing this package imports nothing heavy; `app` imports textual.
"""
