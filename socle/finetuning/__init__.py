"""Fine-tuning: training files checked, LoRA jobs run on the job queue, the result served as a new model."""
