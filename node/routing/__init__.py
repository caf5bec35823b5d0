"""Node ids, roles, topic names and recipient resolution (pure functions)."""
