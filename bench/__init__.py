"""The benchmark harness: data generation, load driving, references and reports."""
