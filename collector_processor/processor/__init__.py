"""Processors applied in pipeline order: resource, resourcedetection, memory_limiter."""
