"""Alert rules (declarative YAML) evaluated continuously over metrics and events, with
de-duplication, stored ``alert`` events, live bus messages and signed webhook notifications.
``rules`` loads and validates, ``engine`` evaluates, ``webhooks`` delivers."""
