"""Benchmarks for headroom-integrations (LoCoMo retrieval recall, latency at scale).

Run ``python -m bench.locomo`` and ``python -m bench.latency``; results go to bench/results/.
"""
