"""Built-in routers, one module each; registered as each is imported (`registry.Registry`), so a new router is
one new file here."""
