//! Man pages for a command-line program and each of its subcommands, rendered from
//! its clap definition (clap_mangen): `picluster manpages DIR` and
//! `picluster-worker manpages DIR`, which the Debian package ships.

use std::path::Path;

/// Writes `command`'s man page and one per subcommand (`NAME-SUB.1`) into `dir`;
/// returns how many. Used by both programs' `manpages` commands.
pub fn write_manpages(command: clap::Command, dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut written = 0;
    let mut todo = vec![(command.get_name().to_string(), command)];
    while let Some((name, command)) = todo.pop() {
        for sub in command.get_subcommands() {
            if sub.get_name() != "help" {
                todo.push((format!("{name}-{}", sub.get_name()), sub.clone()));
            }
        }
        let page = command.name(name.clone());
        let mut file = std::fs::File::create(dir.join(format!("{name}.1")))?;
        clap_mangen::Man::new(page).render(&mut file)?;
        written += 1;
    }
    Ok(written)
}
