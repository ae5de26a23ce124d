"""The schema part: the TFDV schemas (`tensorflow_metadata` Schema protos) a project's data is validated by.

- `rules`: what every schema the pipeline uses must say (FLOAT features refuse NaN and infinities);
  TF-free (tensorflow_metadata protos only).
- `infer`: a starting schema inferred from statistics (TFX's SchemaGen for `tfxp schema infer`; TFDV's
  `infer_schema` over init's statistics for `tfxp init`), tightened by `rules` and for the project.
- `check`: project.yaml against schema.pbtxt, both ways (`tfxp.project.load` runs it); TF-free.
- `anomalies`: ExampleValidator's and StatisticsGen's outputs read back, and the wording of how to accept
  a value outside the schema's domain; TF-free.

Curated schemas sit beside the projects that use them (`tfxp/projects/taxi/schema.pbtxt`). Importing this
package imports nothing: each module loads what it needs.
"""
