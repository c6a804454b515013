import Foundation
import Testing
import TestSupport

/// `Examples/Notebook` (the notebook through `LanguageModel`, public API only) builds and gives the label back.
@Suite(.serialized) struct ExampleTests {
    @Test func notebookExampleRuns() throws {
        let gpt2kit = try #require(CommandTests.executable, "build first: swift build --build-tests")
        let example = (gpt2kit as NSString).deletingLastPathComponent + "/notebook-example"
        let (status, output) = try runChildProcess(example, [Fixtures.path("tiny-gpt2"), Fixtures.path("gpt2-tokenizer")])
        #expect(status == 0, "\(output)")
        #expect(output.contains("ids: [18308, 14179, 318, 257, 2168, 286] [26548, 8842, 16122]"))
        #expect(output.contains("greedy: Harry Potter is a series ofseven fantasy novels"))
        #expect(output.components(separatedBy: "sampled: ").count == 4, "three sampled continuations")
    }
}
