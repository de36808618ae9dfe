// OutlineDnd: drag and drop for the whole course outline, by event delegation, so a
// row carries no handlers of its own (a course of 1,000 videos stays light).
//
// It reads plain data attributes that the outline renders:
//   li[data-chapter-id]            a chapter (its header takes drops of videos, files, chapters)
//   [data-drag-chapter=<id>]       a chapter's drag handle (draggable)
//   li[data-video-id]              a video row (a drop inserts before or after it)
//   [data-drag-video=<id>]         a video's drag handle (draggable); a selected row drags the selection
//   input[data-select-video]       a video row's selection checkbox
//   input[type=file][data-upload-chapter=<id>]  a chapter's file input; [data-upload-for=<id>] opens it
//   [data-retry-selected]          retries the selected rows' failed uploads that this tab holds
//   [data-replace-for=<video id>]  "Replace file": one file for that video (one shared input)
// and tells Reflex only what was decided: onMoveVideos({video_ids, chapter_id, before_id}),
// onMoveChapter({chapter_id, target_id}) and onRetried({retried, missing}) (missing: the
// selected failed rows whose files this tab does not hold). Files go straight to the upload manager.
import { useRef } from "react";
import { addFiles, retryVideos } from "./manager.js";

const VIDEOS = "application/x-course-videos";
const CHAPTER = "application/x-course-chapter";
const MARK = "2px dashed var(--accent-9)";

function kindOf(event) {
  const types = Array.from(event.dataTransfer?.types || []);
  if (types.includes(VIDEOS)) return "videos";
  if (types.includes(CHAPTER)) return "chapter";
  if (types.includes("Files")) return "files";
  return null;
}

// Where a drop of this kind lands: a video row (videos only) or a chapter.
function targetOf(kind, element) {
  if (!element?.closest) return null;
  if (kind === "videos") {
    const row = element.closest("[data-video-id]");
    if (row) return { row, chapter: row.closest("[data-chapter-id]") };
  }
  const chapter = element.closest("[data-chapter-id]");
  return chapter ? { row: null, chapter } : null;
}

function selectedIds(root) {
  return Array.from(root.querySelectorAll("li[data-video-id]"))
    .filter((row) => row.querySelector("input[data-select-video]")?.checked)
    .map((row) => row.dataset.videoId);
}

export function OutlineDnd({ courseId, maxBytes, onMoveVideos, onMoveChapter, onRetried, children, id, className, style }) {
  const root = useRef(null);
  const replaceInput = useRef(null);
  const replacing = useRef(null); // {videoId, chapterId} while the file picker is open
  const marked = useRef(null);
  // Reflex hands over new callback identities on every render: read the latest ones.
  const callbacks = useRef({});
  callbacks.current = { onMoveVideos, onMoveChapter, onRetried };

  const mark = (element) => {
    if (marked.current === element) return;
    if (marked.current) marked.current.style.outline = "";
    marked.current = element;
    if (element) element.style.outline = MARK;
  };

  const onDragStart = (event) => {
    const handle = event.target.closest?.("[data-drag-video],[data-drag-chapter]");
    if (!handle) return;
    if (handle.dataset.dragVideo) {
      const row = handle.closest("[data-video-id]");
      const own = handle.dataset.dragVideo;
      const selection = selectedIds(root.current);
      const ids = selection.includes(own) ? selection : [own];
      event.dataTransfer.setData(VIDEOS, JSON.stringify(ids));
      if (row) event.dataTransfer.setDragImage(row, 12, 12);
    } else {
      event.dataTransfer.setData(CHAPTER, handle.dataset.dragChapter);
      const chapter = handle.closest("[data-chapter-id]");
      if (chapter) event.dataTransfer.setDragImage(chapter, 12, 12);
    }
    event.dataTransfer.effectAllowed = "move";
  };

  const onDragOver = (event) => {
    const kind = kindOf(event);
    const target = kind && targetOf(kind, event.target);
    if (!target) {
      mark(null);
      return;
    }
    event.preventDefault();
    event.dataTransfer.dropEffect = kind === "files" ? "copy" : "move";
    mark(target.row || target.chapter);
  };

  const onDragLeave = (event) => {
    if (!root.current?.contains(event.relatedTarget)) mark(null);
  };

  const onDrop = (event) => {
    const kind = kindOf(event);
    const target = kind && targetOf(kind, event.target);
    mark(null);
    if (!target?.chapter) return;
    event.preventDefault();
    const chapterId = target.chapter.dataset.chapterId;
    if (kind === "files") {
      addFiles(event.dataTransfer.files, { courseId: String(courseId ?? ""), chapterId, maxBytes });
    } else if (kind === "chapter") {
      const dragged = event.dataTransfer.getData(CHAPTER);
      if (dragged && dragged !== chapterId) callbacks.current.onMoveChapter?.({ chapter_id: dragged, target_id: chapterId });
    } else {
      let ids;
      try {
        ids = JSON.parse(event.dataTransfer.getData(VIDEOS));
      } catch {
        return;
      }
      if (!Array.isArray(ids) || ids.length === 0) return;
      let before = null;
      if (target.row) {
        // The lower half of a row means "after it": before the next row that is not moving.
        const box = target.row.getBoundingClientRect();
        let row = event.clientY > box.top + box.height / 2 ? target.row.nextElementSibling : target.row;
        while (row && (!row.dataset?.videoId || ids.includes(row.dataset.videoId))) row = row.nextElementSibling;
        before = row ? row.dataset.videoId : null;
      }
      callbacks.current.onMoveVideos?.({ video_ids: ids, chapter_id: chapterId, before_id: before });
    }
  };

  const onChange = (event) => {
    const input = event.target;
    if (input === replaceInput.current) {
      const target = replacing.current;
      if (target && input.files?.length) {
        addFiles([input.files[0]], { courseId: String(courseId ?? ""), chapterId: target.chapterId, maxBytes,
          replacesVideoId: target.videoId });
      }
      input.value = "";
      return;
    }
    const chapterId = input?.dataset?.uploadChapter;
    if (!chapterId || input.type !== "file") return;
    addFiles(input.files, { courseId: String(courseId ?? ""), chapterId, maxBytes });
    input.value = ""; // choosing the same file again fires change again
  };

  const onClick = (event) => {
    if (event.target.closest?.("[data-retry-selected]")) {
      const failed = selectedIds(root.current).filter(
        (videoId) => root.current.querySelector(`li[data-video-id="${CSS.escape(videoId)}"]`)?.dataset.status === "failed" ||
          root.current.querySelector(`li[data-video-id="${CSS.escape(videoId)}"]`)?.dataset.status === "uploading",
      );
      callbacks.current.onRetried?.(retryVideos(failed));
      return;
    }
    const replace = event.target.closest?.("[data-replace-for]");
    if (replace) {
      const chapter = replace.closest("[data-chapter-id]");
      if (!chapter) return;
      replacing.current = { videoId: replace.dataset.replaceFor, chapterId: chapter.dataset.chapterId };
      replaceInput.current?.click();
      return;
    }
    const button = event.target.closest?.("[data-upload-for]");
    if (!button) return;
    const chapterId = button.dataset.uploadFor;
    root.current?.querySelector(`input[type=file][data-upload-chapter="${CSS.escape(chapterId)}"]`)?.click();
  };

  return (
    <div
      ref={root}
      id={id}
      className={className}
      style={style}
      onDragStart={onDragStart}
      onDragOver={onDragOver}
      onDragEnter={onDragOver}
      onDragLeave={onDragLeave}
      onDrop={onDrop}
      onChange={onChange}
      onClick={onClick}
    >
      {children}
      <input
        ref={replaceInput}
        type="file"
        accept="video/*"
        hidden
        tabIndex={-1}
        aria-label="Choose the new file for the video"
      />
    </div>
  );
}
