"""Benchmarks: our jam server against a bare grpc.aio fan-out baseline, under load from separate processes."""
