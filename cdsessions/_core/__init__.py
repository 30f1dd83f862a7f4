"""The sans-I/O core: everything cdsessions decides, and nothing that waits.

Wire values, request builders, response decoders, the retry plan, timeouts, server rules, money,
observer events, and every multi-step flow written as steps (generators that yield what should
happen next). Nothing here opens a socket, starts a thread or imports asyncio; the clients drive
these steps with a transport (see ``cdsessions.transports``). The layers contract in
``pyproject.toml`` (``[tool.importlinter]``) holds that line.
"""
