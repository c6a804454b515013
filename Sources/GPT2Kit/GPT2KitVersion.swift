/// The version of GPT2Kit (library and command line), printed by `gpt2kit --version`.
/// A caseless namespace: the module is `GPT2Kit`, so no type may take that name (see STYLE.md §1).
public enum GPT2KitVersion {
    /// Semantic version of this source tree; the one place it is written.
    public static let current = "0.3.0"
}
