"""The site's settings that the administration changes from the browser: the welcome screen, the default model,
the legal pages and the accessibility statement's conformance level, the quota presets' amounts, the retention
periods and ProConnect."""
