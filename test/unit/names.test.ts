import t from 'tap'
import { fromGitName, isSafeName, toGitName, DIR_MARKER } from '../../lib/meta/names.js'

t.test('names git cannot hold are escaped reversibly', async t => {
  for (const name of ['.git', '.GIT', DIR_MARKER, '.swarmfs~x', 'plain', '.gitignore', 'a b', 'ünï']) {
    t.equal(fromGitName(toGitName(name)), name, name)
  }
  t.not(toGitName('.git'), '.git')
  t.not(toGitName(DIR_MARKER), DIR_MARKER)
  t.equal(toGitName('.gitignore'), '.gitignore')
})

t.test('unsafe names are refused', async t => {
  for (const bad of ['', '.', '..', 'a/b', 'a\0b', 'x'.repeat(256)]) t.notOk(isSafeName(bad), JSON.stringify(bad.slice(0, 10)))
  t.ok(isSafeName('x'.repeat(255)))
})
