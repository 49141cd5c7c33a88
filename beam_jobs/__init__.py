"""Apache Beam jobs of tfcmvp. ``python -m beam_jobs.extract``: videos -> TFRecords."""
