// The single-process command line; `gpt2kit-mpi` runs the same commands under Open MPI.
import GPT2KitCLI

GPT2KitCommand.runMain()
