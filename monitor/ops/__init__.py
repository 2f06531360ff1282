"""Where operators already look: Prometheus metrics and health (:mod:`monitor.ops.http`,
:mod:`monitor.ops.metrics`), a Telegram command bot (:mod:`monitor.ops.bot`) and PNG charts
(:mod:`monitor.ops.charts`). Each part is optional and off by default; this package imports
nothing on its own, so a daemon with every part switched off never loads prometheus-client,
python-telegram-bot or matplotlib. Configuration: :class:`monitor.config.MetricsConfig`,
:class:`monitor.config.TelegramBotConfig`."""
