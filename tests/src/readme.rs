//! The README's shell blocks, read as commands: what the tests that run
//! the README as written take their lines from.

/// The commands of the `nth` (0-based) `sh` block after `heading` in
/// `text`: comments and blank lines dropped, continued lines joined.
pub fn commands_under(text: &str, heading: &str, nth: usize) -> Vec<String> {
    let section = text
        .split_once(heading)
        .unwrap_or_else(|| panic!("the README has no {heading:?}"))
        .1;
    let block = section
        .split("```sh\n")
        .nth(nth + 1)
        .and_then(|rest| rest.split_once("```"))
        .map(|(block, _)| block)
        .unwrap_or_else(|| panic!("no sh block {nth} under {heading:?}"));
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}
