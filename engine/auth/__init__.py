"""Identity: users, passwords, sessions, API tokens and CSRF."""
