"""Sending queue, retry and timeout: the exporterhelper chain queue -> retry -> timeout -> push."""
