"""The distributed deployment: intake processes journal and hand work to RabbitMQ; worker
processes consume it and run the pipeline against the shared PostgreSQL database."""
