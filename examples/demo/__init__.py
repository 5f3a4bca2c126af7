"""A chat-completions proxy in front of a flaky upstream, with errorkit installed."""
