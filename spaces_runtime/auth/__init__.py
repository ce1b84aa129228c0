"""Who is who: users, organizations and their roles, tokens (stored as hashes), passwords (argon2), and the one
permission rule (``rules``, pure) that the REST API, the gateway and the CLI's answers all go through."""
