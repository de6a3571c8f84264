"""The `rivya-hooks` command: the top floor, above the roles (receiver/, tasks/)."""
