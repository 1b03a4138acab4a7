"""Batch: grading a whole class (trusted side).

`classrun` lists the students of a folder or LMS zip and drives them through the pipeline;
`schedule` orders them longest first; `late` applies the late policy and grace days; `executor` is
what every executor shares (local threads, or Ray tasks in `raybatch`), so neither imports the
driver.
"""
