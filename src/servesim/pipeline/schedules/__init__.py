"""Built-in pipeline schedules, one module each; registered as each is imported
(`registry.Registry`), so a new schedule is one new file here."""
