"""Profiles for people: HTML flame graphs, release diffs, pprof/speedscope/collapsed export."""
