@_exported import Tensors
@_exported import Checkpoints
@_exported import Tokenization
@_exported import GPT2
@_exported import Optimization
@_exported import Training
@_exported import Generation
