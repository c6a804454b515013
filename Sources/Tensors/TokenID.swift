/// A token id, the one integer type for ids across the tokenizer, the model, training and generation
/// (64-bit, as the `LongTensor` ids of PyTorch and transformers).
public typealias TokenID = Int

/// The label that takes no loss, as PyTorch's `CrossEntropyLoss(ignore_index=-100)` and transformers' masked
/// labels: the context's labels of a fine-tuning example, and padding.
public let ignoreIndex: TokenID = -100
