import Foundation
import GPT2Kit
import Testing
import TestSupport

@Suite struct GenerationConfigFileTests {
    @Test func readsTheFixture() throws {
        let file = try GenerationConfigFile(path: Fixtures.path("tiny-gpt2/generation_config.json"))
        #expect(file.eosTokenIDs == [50256])
        #expect(file.padTokenID == nil && file.topK == nil && file.doSample == nil)
    }

    @Test func readsListsAndSamplingFields() throws {
        let json = #"{"eos_token_id": [50256, 198], "pad_token_id": 0, "do_sample": true, "top_k": 20, "top_p": 0.9, "temperature": 0.7, "max_length": 30}"#
        let file = try GenerationConfigFile(jsonData: Data(json.utf8), path: "g.json")
        #expect(file.eosTokenIDs == [50256, 198])
        #expect(file.padTokenID == 0 && file.doSample == true && file.topK == 20 && file.topP == 0.9)
        #expect(file.temperature == 0.7 && file.maxLength == 30)
    }

    @Test func badFilesThrow() {
        #expect(throws: GenerationConfigError.invalidJSON(path: "g.json")) { try GenerationConfigFile(jsonData: Data("[1]".utf8), path: "g.json") }
        #expect(throws: GenerationConfigError.wrongType(path: "g.json", key: "top_k", expected: "an integer")) {
            try GenerationConfigFile(jsonData: Data(#"{"top_k": "many"}"#.utf8), path: "g.json")
        }
        #expect(throws: GenerationConfigError.wrongType(path: "g.json", key: "do_sample", expected: "a boolean")) {
            try GenerationConfigFile(jsonData: Data(#"{"do_sample": 1}"#.utf8), path: "g.json")
        }
    }
}

extension GenerationConfigFileTests {
    @Test func readsProcessorAndStopFields() throws {
        let json = #"{"repetition_penalty": 1.3, "no_repeat_ngram_size": 3, "stop_strings": ["\n\n", "END"]}"#
        let file = try GenerationConfigFile(jsonData: Data(json.utf8), path: "g.json")
        #expect(file.repetitionPenalty == 1.3 && file.noRepeatNGramSize == 3 && file.stopStrings == ["\n\n", "END"])
        let one = try GenerationConfigFile(jsonData: Data(#"{"stop_strings": "END", "repetition_penalty": 2}"#.utf8), path: "g.json")
        #expect(one.stopStrings == ["END"] && one.repetitionPenalty == 2)
        #expect(throws: GenerationConfigError.wrongType(path: "g.json", key: "stop_strings", expected: "a string or a list of strings")) {
            try GenerationConfigFile(jsonData: Data(#"{"stop_strings": ["a", 1]}"#.utf8), path: "g.json")
        }
        #expect(throws: GenerationConfigError.wrongType(path: "g.json", key: "no_repeat_ngram_size", expected: "an integer")) {
            try GenerationConfigFile(jsonData: Data(#"{"no_repeat_ngram_size": 2.5}"#.utf8), path: "g.json")
        }
    }
}
