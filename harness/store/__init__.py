"""Records at rest: the schema of a record (`record`), durable writes (`durable`) and the rules that make
text from plugins and workers safe to keep and show (`safe_text`). Loading runs into pandas is the public
harness.results."""
