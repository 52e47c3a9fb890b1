"""The Gradio web app: one module per tab, calling the services and nothing else."""
