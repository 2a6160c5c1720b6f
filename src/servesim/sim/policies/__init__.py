"""Built-in scheduling policies, one module each; registered as each is imported
(`registry.Registry`), so a new policy is one new file here."""
