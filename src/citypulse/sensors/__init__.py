"""Smart Village / generic IoT sensor ingest: the documented JSON schema (``schema``), per-device
API keys (``keys``), the shared intake (``ingest``), MQTT (``mqtt``) and ``citypulse sensors``
(``cli``). HTTP lives in ``web/routes/sensors.py``; everything lands through the ingest
pipeline as the ``smart-village`` feed."""
