"""The evidence report: templates, deterministic figures, disclosure control."""
