// Files unlinked while open, by the name libfuse moved them to. They are gone from the tree (and
// from peers) at once, as an unlink on a local disk; only this mount's open handles still reach
// them, until the last one is released. Being in no tree, their attribute changes are kept here,
// not in the index.
import { fsError } from '../core/errors.js'
import type { Attrs, FileNode } from '../meta/nodes.js'

/**
 * The name libfuse 2 gives a file unlinked or renamed over while open (`hide_node`), so it can
 * still ask for it by path: ".fuse_hidden" and the inode and a counter in 8 hex digits each.
 */
const HIDDEN_NAME = /\/\.fuse_hidden[0-9a-f]{16}$/

export function isHiddenName (path: string): boolean {
  return HIDDEN_NAME.test(path)
}

export class HiddenFiles {
  private readonly byName = new Map<string, FileNode>()
  /** What changed of each one's attributes since it was hidden. */
  private readonly changed = new Map<FileNode, Partial<Attrs>>()

  get size (): number {
    return this.byName.size
  }

  get (path: string): FileNode | undefined {
    return this.byName.get(path)
  }

  has (path: string): boolean {
    return this.byName.has(path)
  }

  hide (path: string, file: FileNode, ctime: number): void {
    this.byName.set(path, file)
    this.setattr(file, { ctime })
  }

  setattr (file: FileNode, attrs: Partial<Attrs>): void {
    this.changed.set(file, { ...this.changed.get(file), ...attrs })
  }

  /** A node's attributes, with what changed while hidden. */
  attrsOf (node: { attrs: Attrs }): Attrs {
    if (this.changed.size === 0) return node.attrs
    const changed = this.changed.get(node as FileNode)
    return changed === undefined ? node.attrs : { ...node.attrs, ...changed }
  }

  delete (path: string): boolean {
    const file = this.byName.get(path)
    if (file === undefined) return false
    this.byName.delete(path)
    this.forgetIfUnnamed(file)
    return true
  }

  /** Forgets every hidden name of `file` (its last handle was released). */
  forget (file: FileNode): void {
    for (const [name, f] of this.byName) if (f === file) this.byName.delete(name)
    this.changed.delete(file)
  }

  private forgetIfUnnamed (file: FileNode): void {
    for (const f of this.byName.values()) if (f === file) return
    this.changed.delete(file)
  }

  /**
   * libfuse 2 reaches an open, unlinked file only by its hidden path: once its directory is gone,
   * its descriptors would fail (fstat ENOENT, reads EIO). So such a directory is busy until the
   * file is closed, as a directory on NFS is with its silly-renamed files, rather than lose them.
   */
  mustHoldNone (dir: string): void {
    for (const name of this.byName.keys()) {
      if (name.startsWith(dir + '/')) throw fsError('EBUSY', dir, 'a file in it that was deleted is still open:')
    }
  }

  /** libfuse moves the hidden files with their directory: so do their names here. */
  moveDir (from: string, to: string): void {
    for (const [name, file] of [...this.byName]) {
      if (!name.startsWith(from + '/')) continue
      this.byName.delete(name)
      this.byName.set(to + name.slice(from.length), file)
    }
  }
}
