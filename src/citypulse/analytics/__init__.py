"""Traffic analytics: congestion, anomalies and short-term forecasts for the speed-map links.

Layout (data flows top to bottom):

* ``history``    store -> dense grids (entities x 5-minute bins), link metadata and districts
* ``baseline``   what is normal: free-flow speed, robust time-of-week profile, deviation scale
* ``congestion`` congestion index per link / region / district, now vs last week, patterns
* ``anomalies``  robust scores, runs of unusual slowness, traffic-news linking, Events
* ``forecast``   15/30/60-minute speed forecasts (scikit-learn gradient boosting)
* ``backtest``   the forecasts against last-value and historical-average baselines
* ``engine``     ``TrafficAnalytics``: one cached entry point for web, runner and CLI
* ``runner``     the periodic pass inside ``citypulse serve`` that writes results back
* ``simulated``  weeks of simulated history straight from the simulator's model
* ``cli``        ``citypulse analytics backtest | run | simulate-history``

Written back to the store (``feed_id="analytics"``): observations ``congestion_index`` (links,
``traffic-region:*``, ``traffic-district:*``) and ``speed_forecast_kmh_{15,30,60}m`` (labelled
with the target bin), events of kind ``traffic-anomaly``.
"""
