"""Step functions that the Argo workflows run under Hera's runner, one module per DAG task.

Place in the flow: workflows/builders.py compiles each step into a script template whose pod runs
`python -m hera.workflows.runner -e workflows.steps.<module>:<function> <inputs.json>`; the
controller reads the output parameters and exit codes back (controller/core/contract.py). Nothing is
imported here, so a step pays only for the modules it uses.
"""
