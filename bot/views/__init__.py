"""View models -> Block Kit and plain text: every Slack surface is rendered here."""
