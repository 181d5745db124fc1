"""How an open case's document is stored in ``instances``: most of it packed in one binary field."""

from __future__ import annotations

from typing import Final

from servicekit.store import Packing

#: What an open case's document keeps in one binary field (servicekit.store.Packing): its state, journal,
#: history, user tasks and variables, which no filter, projection or partial update of ``instances`` names
#: (every reader unpacks: the store, the read models' repair, the case index, the migration's selection).
#: Its outbox, status, timers, incidents, active elements and the read models' marks stay fields of their own.
INSTANCE_PACKING: Final = Packing(frozenset({"state", "journal", "history", "applied", "kept", "waiting_messages",
                                      "log_seq", "user_tasks", "variables", "has_user_tasks"}))
