"""buddyfarm.reports: results -> tidy frames -> figures -> HTML/Markdown reports."""
