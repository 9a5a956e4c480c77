"""Extensions: file_storage (persistent queues), health_check, bearertokenauth."""
